"""Dataset parsers; importing this package registers every one of them."""

import importlib

# Registration order is the order `reid datasets` lists them in.
_MODULES = ("market", "msmt17", "cuhk03", "veri", "luperson", "folder")

for _name in _MODULES:
    importlib.import_module(f"{__name__}.{_name}")
