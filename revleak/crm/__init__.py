"""The CRM model: change events, record state machines, leak rules, impact, duplicates."""
