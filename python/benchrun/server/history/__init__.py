"""History in the job server: results per project, branch, testbed, benchmark and measure
(store.py), fed from completed jobs and uploads (ingest.py), watched by threshold models and
change-point detection whose suspects are re-run before an alert is raised (alerts.py), served
over REST (rest.py). docs/history.md describes the model."""
