"""Print the pip version ansible-test bootstraps, as used in its cache file name (24.2 -> 24_2)."""

import inspect
import re

from ansible_test._internal import python_requirements

source = inspect.getsource(python_requirements.get_venv_packages)
print(re.search(r"pip='([^']+)'", source).group(1).replace(".", "_"))
