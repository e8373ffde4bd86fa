"""``ckptlint convert``: a pickle checkpoint's state_dict written as safetensors, without running the file.

The function is :func:`ckptlint.conversion.api.convert`, exported as ``ckptlint.convert``
(docs/convert.md, docs/api.md). Nothing heavy is imported here.
"""
