"""Weekly and monthly maintenance reports: KPIs, charts, recommendations."""
