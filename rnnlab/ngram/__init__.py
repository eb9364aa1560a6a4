"""Count-based n-gram language models (baselines for the recurrent models).

- `rnnlab.ngram.kneser_ney`: interpolated Kneser-Ney trigram (Chen & Goodman 1998).

The neural n-gram model of Bengio et al. (2003) is a model of the Trainer:
`model.arch = "nplm"` (rnnlab/models/nplm.py; NumPy twin rnnlab/numpy/ngram.py).
"""
