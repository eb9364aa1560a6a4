"""Looking inside a trained network (issue 25; Karpathy, Johnson & Fei-Fei 2016, LSTMVis).

    record.py      every layer's h, c and gates over a text (`record_run`, `record_model` → `Recording`)
    features.py    simple features of the text (inside quotes, position in the line, capital, ...)
    units.py       each unit's correlation with each feature; top contexts; LSTMVis-style matches
    saturation.py  how often each gate unit is left- or right-saturated, and its plot
    surprise.py    the per-token loss and the model's top predictions, as JSON, ANSI or HTML

`rnnlab inspect RUN units|saturation|surprise` (rnnlab/cli.py) runs them on a run.
"""
