"""Concepts across layers and counterfactual removal of the data they are attributed to
(`tdabench concepts`; Konz et al. 2023). Modules: layers (which layers, their activations),
probes (accuracy and L1 sparsity of a layer's probe), agreement (estimators vs the gold standard of
each layer's probe target), removal and summary (the removal experiment), options, results, run."""
