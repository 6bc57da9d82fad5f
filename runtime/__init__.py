"""The PyTorch engine: model, weight sparsity and node names.

Takes plain config objects and never imports the language package
(``circuitdsl``), so it can be used, tested and benchmarked on its own.
"""
