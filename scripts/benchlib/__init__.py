"""The benchmark behind `make bench` (scripts/bench.py is the entry point): one module per
concern — util (processes, memory, statistics, the CSV), postmesh and postfix (the two systems
under test, each set up for the same jobs), dovecot (the POP3 reference), clients (the load
generators and the sink), figures (one function per measured figure) and report (table,
markdown, README section)."""
