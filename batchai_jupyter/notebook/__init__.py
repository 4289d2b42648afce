"""The notebook experience: magics, the Job handle, widgets and the Workspace API (kernel side only).

Everything here talks to the service through `batchai_jupyter.client`; nothing imports server code.
"""
