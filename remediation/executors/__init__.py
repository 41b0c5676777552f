"""Executors: carry out a plan's commands (CRM write-back, Slack, GitOps)."""
