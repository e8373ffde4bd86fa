"""Pickle safety: what each global is, and what torch.load(weights_only=True) will do."""
