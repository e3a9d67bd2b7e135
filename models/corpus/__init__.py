"""Corpora that measure the converters and the MIL evaluator beyond the zoo: one op per module (ops.py) and small
seeded architectures a team would bring (architectures.py)."""
