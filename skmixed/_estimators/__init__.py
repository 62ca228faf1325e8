"""The sklearn layer: validation, orchestration of the model's pieces, results, summary()."""
