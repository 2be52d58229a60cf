"""Device kernels, one module per unit: ``conv`` and ``matmul`` (matrix unit), ``vector`` (vector unit)."""
