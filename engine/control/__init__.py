"""Control: the command grammar, and launching, stopping and exporting a study's runs.

``grammar`` declares every option of the fnotui commands (the CLI's parser and the command
lines built here both read it); ``base`` is the control interface, ``local`` its implementation
on this machine (``launch``: detached engines and signals), ``remote`` the one that runs the same
commands on a study's host through ssh.

The top of the engine: may import any other subsystem.
"""
