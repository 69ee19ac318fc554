"""A local Adobe Experience Platform that speaks AEP's HTTP API over one data directory.

The sandbox never imports :mod:`aep_assets.aep`; the two meet only over HTTP.
"""
