"""Build and deploy Agentex agents on the Scale GenAI Platform from GitHub, Gitea and Forgejo Actions."""

__version__ = "0.1.0"
USER_AGENT = f"sgp-agentex-action/{__version__}"
