"""minipod.runtime.cli: the `minipod` command line, one module per verb.

Parse, ask, print: a verb reads the agent's state records (state.py) or asks
the agent through its socket (../client.py), and prints what kubectl would.
No library logic lives here, and verbs do not import each other.

    main.py        dispatch, and every error as one line and an exit code
    cmdutil.py     what every verb shares: -n, root check, tables, NotFound
    resources.py   kubectl's resource words, the pod records a verb lists,
                   a manifest file's pods and objects
    cmd_<verb>.py  one verb each (cmd_port_forward: port-forward)

What is not printing lives a floor down: the log reader (../logreader.py),
inspect's /proc readers (../inspection.py), top's cgroup samples
(../podusage.py), exec's confined stdio (../enter.py start_confined), run's
create/unchanged/conflict decision (../api/podchange.py).

Check by hand: `minipod VERB --help`; `python3 -X importtime -m minipod get
pods` shows that a verb imports only what it needs.
"""
