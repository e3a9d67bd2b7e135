"""`edgeport tune`: the recipe ladder's rows, Pareto front and chart."""
