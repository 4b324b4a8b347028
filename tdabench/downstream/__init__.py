"""The field's other evaluations next to further training (issue #17).

`metrics` (detection AUC, precision at k, Spearman, top-k cardinality), `selfinfluence` (each
training instance scored against its own loss), `mislabel` (finding flipped labels),
`randomization` (the model-randomisation sanity check), `brittleness` (top-k removal and further
training), `results` (its versioned JSON file); the flow of `tdabench downstream`: `options`
(settings, validated before training), `final_checks` (cardinality, randomisation and top-k removal
on the final model; `removal_check`), `mislabel_check` (the noisy variant), `common` (recording
failures) and `run` (the whole run).
"""
