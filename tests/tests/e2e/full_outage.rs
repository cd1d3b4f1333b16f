//! Q3, the full outage, end to end: the composite runbook against the fakes and a real Redis.
