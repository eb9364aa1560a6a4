"""Count-based and neural n-gram language models (baselines for the recurrent models).

- `rnnlab.ngram.kneser_ney`: interpolated Kneser-Ney trigram (Chen & Goodman 1998).
- `rnnlab.ngram.neural`: the neural probabilistic language model of Bengio et al. (2003).
"""
