"""Loaders that turn published datasets (ConceptNet, Visual Genome, VisualSem, image-text pairs) into knowledge graphs."""
