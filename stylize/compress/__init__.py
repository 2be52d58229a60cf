"""Model compression for stylize: ``stylize prune`` and ``stylize quantize``, scored by what they do to stylization.

:mod:`.prune` (the seed's ``torch.nn.utils.prune``, made permanent; channel pruning), :mod:`.quantize` (static
int8 PTQ with torchao's PT2E flow; int8 inference), :mod:`.report` (the probe score), :mod:`.commands` (what the
two CLI commands call: load, compress, write atomically, score).
"""
