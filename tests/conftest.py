pytest_plugins = ["hcqw.lab.pytest_plugin"]
