"""Targets: the model class a checkpoint is meant for, as a signature of expected keys."""
