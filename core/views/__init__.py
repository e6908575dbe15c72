"""What the pages and the CLI show about a run: each module takes a run folder (`core.rundir.RunDir`, or its path)
and reads it through `RunDir` only; none writes a run's results.

    runs.py     progress, curves, where tasks ran, run summaries, leaderboard / quality / verdict rows
    report.py   plotly figures of a run and its one-page HTML report
    export.py   a run as a balanced dataset zip (the user's own files + the synthetic top-up)
    predict.py  a run's kept classifier on new images, and its weights files
"""
