"""Adapters to the reference libraries (traker, kronfluence, captum, dattri), registered like
built-in estimators but computed by the library that made each method known. Each adapter
transposes and flips the library's scores to tdabench's convention: shape (n_test, n_train),
positive = removing the training instance increases the target. Each class names its library in
`adapter_of` and imports it only when fitted (a missing library is a TdabenchError naming the package).
"""
