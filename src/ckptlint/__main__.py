"""``python -m ckptlint`` runs the command line."""

from .cli import console_main

if __name__ == "__main__":  # not when a spawned --jobs worker imports it as __mp_main__
    console_main()
