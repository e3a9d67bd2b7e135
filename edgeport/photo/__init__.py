"""`edgeport run`: an artifact on photos of any size (tiling, the streamed PNG writer, task outputs, the seam
check)."""
