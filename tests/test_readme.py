"""The README's quick-start commands run as written, on the smoke configs
(`,smoke` added to each config option; the paths in a temporary folder)."""

import re
import shlex

import numpy as np
from PIL import Image

from subprocess_runs import REPO, run_python


def quick_start_commands() -> list[str]:
  """The commands of the README's first code block under 'Quick start'."""
  text = (REPO / 'README.md').read_text()
  section = text.split('## Quick start', 1)[1].split('\n## ', 1)[0]
  block = section.split('```bash', 1)[1].split('```', 1)[0]
  joined = block.replace('\\\n', ' ')
  return [line.strip() for line in joined.splitlines()
          if line.strip().startswith('python -m ')]


def test_the_quick_start_runs_on_the_smoke_configs(tmp_path):
  commands = quick_start_commands()
  assert [c.split()[2] for c in commands] == [
      'dvn_jax.main', 'dvn_jax.main', 'dvn_jax.predict']
  image = tmp_path / 'my_horse.jpg'
  Image.fromarray(np.random.default_rng(0).integers(
      0, 255, (40, 56, 3), dtype=np.uint8)).save(image)
  outputs = []
  for command in commands:
    command = re.sub(r'(--config=configs/\w+\.py:[\w,]+)', r'\1,smoke',
                     command)
    command = (command.replace('/tmp/', f'{tmp_path}/')
               .replace(' my_horse.jpg', f' {image}'))
    result = run_python(*shlex.split(command)[1:], timeout=600)
    assert result.returncode == 0, (command, result.stderr[-2000:])
    outputs.append(result.stdout)
  assert outputs[0].startswith('val: mean IoU ')
  assert outputs[1].startswith('test: mean IoU ')
  assert (tmp_path / 'masks' / 'my_horse_mask.png').is_file()
