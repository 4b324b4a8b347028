"""The field's other evaluations next to further training (issue #17).

`metrics` (detection AUC, precision at k, Spearman, top-k cardinality), `selfinfluence` (each
training instance scored against its own loss), `mislabel` (finding flipped labels),
`randomization` (the model-randomisation sanity check), `brittleness` (top-k removal and further
training), `run` (the flow of `tdabench downstream`) and `results` (its versioned JSON file).
"""
