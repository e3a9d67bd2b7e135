"""The export matrix as independent tasks on Ray, and the output store they publish to."""
