"""revleak: a real-time SLO engine that treats revenue leaks and service failures as incidents."""
