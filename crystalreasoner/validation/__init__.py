"""Validation of the best candidates: ranking, atomate2/jobflow MLIP relaxation, DFT inputs, export."""
