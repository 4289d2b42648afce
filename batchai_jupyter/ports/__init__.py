"""The ports: the typed capabilities the core asks of compute backends and datastores, and the value
types both sides share. The core owns them; backends/ and storage/ implement them; this package
imports nothing of the project but errors.
"""
