"""One module per format, each defining FORMAT; exporters.formats is the registry that finds them."""
