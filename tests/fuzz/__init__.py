"""A differential fuzzer: ckptlint's static reading against torch's and CPython's own readers.

See docs/fuzzing.md. ``python -m tests.fuzz --help`` runs it; tests/fuzz/test_fuzz_short.py
is the short run in the default suite.
"""
