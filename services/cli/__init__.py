"""The `parley` command: run the platform on one machine and talk to a running one."""
