"""Compatibility of a checkpoint with a target model: torch's verdict, the reasons, the fix."""
