"""The revleak API: Alertmanager webhooks, incidents, fix packs, audit and the war room."""
