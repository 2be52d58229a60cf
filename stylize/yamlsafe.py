"""YAML as stylize reads it (configs, ``--set`` values, dlp specs): PyYAML's safe loader, with a bound on the
document's size once aliases are expanded.

``yaml.safe_load`` refuses tags that build Python objects, but not a "billion laughs": a 381-byte file of 7
nested 9-fold aliases is 9**7 values. PyYAML builds it as shared references, quickly; whatever walks it
afterwards (a validator, an error message's ``repr``: 78 s, 3.3 GB, a 400 MB line) pays the expanded size.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import StylizeError

MAX_YAML_NODES = 10_000  # a config has ~40 keys, a spec ~20; a bomb of nested aliases expands to billions


def safe_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load``, refusing a document whose values, with every alias expanded, exceed
    :data:`MAX_YAML_NODES` (the "billion laughs": a 381-byte file of 7 nested 9-fold aliases is 9**7 values).
    Counted on the composed node graph (each distinct node once), before anything is built."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}

        def size(n: yaml.Node) -> int:  # values under n with aliases expanded; memoized, so linear in the graph
            if id(n) not in sizes:
                sizes[id(n)] = 1  # a recursive alias counts once (PyYAML builds it as a self-reference)
                if isinstance(n, yaml.SequenceNode):
                    sizes[id(n)] = 1 + sum(size(c) for c in n.value)
                elif isinstance(n, yaml.MappingNode):
                    sizes[id(n)] = 1 + sum(size(k) + size(v) for k, v in n.value)
            return sizes[id(n)]

        total = size(node)
        if total > MAX_YAML_NODES:
            raise StylizeError(f"{where}: the YAML expands to {total:,} values (aliases inside aliases), over the "
                               f"limit of {MAX_YAML_NODES:,}; a stylize config or spec needs far fewer. Remove the aliases.")
        return loader.construct_document(node)
    finally:
        loader.dispose()
