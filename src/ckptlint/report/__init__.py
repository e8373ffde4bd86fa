"""Renderers: turn ckptlint's data (inventories, later findings) into text, JSON and more.

Nothing here imports torch.
"""
