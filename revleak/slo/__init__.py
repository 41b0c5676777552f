"""SLO definitions and the pure SLO maths: windows, burn rates, alerts, the incident."""
