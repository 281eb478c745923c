"""Benchmark campaigns: variants x repetitions with warm-up, in a seeded interleaved order, run
locally or through a job server, every run stored in a SQLite results store (docs/campaigns.md).

    from benchrun.campaign import Campaign
    c = Campaign.matrix("sleep", images={"bb": "oci:/tmp/bb"},
                        commands={"short": ["sleep", "0.1"], "long": ["sleep", "0.2"]},
                        repetitions=10, store="results.db")
    print(c.run())
"""

from benchrun.campaign.plan import PlannedRun, make_plan
from benchrun.campaign.runner import CampaignResult, run_campaign
from benchrun.campaign.spec import Campaign, Variant
from benchrun.campaign.store import ResultsStore, export_csv, export_parquet

__all__ = [
    "Campaign",
    "CampaignResult",
    "PlannedRun",
    "ResultsStore",
    "Variant",
    "export_csv",
    "export_parquet",
    "make_plan",
    "run_campaign",
]
