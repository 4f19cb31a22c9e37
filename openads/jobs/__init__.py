"""Background jobs (decision 0030): long operations run in bounded batches by `openads worker`.

`runner.py` claims and runs jobs; `context.py` is what a handler gets; one module per kind of job:
`housing.py` (check and apply a housing file), `export.py` (the journal to .xlsx), `recordings.py`
(recordings past their retention). `uploads.py` stores the files a job reads. The rows, their
lease and events are `models/job.py` and `models/services/jobs.py`.
"""
