"""auditor: compliance and drift auditing for hybrid vSphere + Azure estates."""

__version__ = "0.1.0"
