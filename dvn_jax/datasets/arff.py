"""Mulan multi-label data: sparse ARFF files and their XML label headers.

Mulan (mulan.sourceforge.net) ships each dataset as an ARFF file whose
attributes are the input features and the labels, plus an XML file naming
the label attributes:

    @relation name
    @attribute word1 {0,1}            <- one line per attribute
    ...
    @data
    {0 1,5 1,1840 1}                  <- sparse rows: "index value" pairs;
                                         absent attributes are 0

Dense rows (comma-separated values) are read too. A malformed file raises a
DataError that names the file and the line.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET

import numpy as np

from dvn_jax.errors import DataError


@dataclasses.dataclass(frozen=True)
class MultiLabelArrays:
  """Features (N, D) float32 and labels (N, L) uint8 in {0, 1}."""
  features: np.ndarray
  labels: np.ndarray
  feature_names: tuple[str, ...]
  label_names: tuple[str, ...]


def read_label_names(xml_path: str) -> tuple[str, ...]:
  """Label attribute names from a Mulan XML header, in file order."""
  try:
    root = ET.parse(xml_path).getroot()
  except FileNotFoundError:
    raise DataError(f'label file not found: {xml_path}') from None
  except ET.ParseError as e:
    raise DataError(f'{xml_path}: not a Mulan label file ({e})') from None
  names = tuple(el.attrib['name'] for el in root.iter()
                if el.tag.rsplit('}', 1)[-1] == 'label' and 'name' in el.attrib)
  if not names:
    raise DataError(f'{xml_path}: no <label name="..."> entries')
  return names


_ATTRIBUTE = re.compile(r"@attribute\s+('(?:[^'\\]|\\.)*'|\"[^\"]*\"|\S+)\s+(.+)",
                        re.IGNORECASE)


def _unquote(name: str) -> str:
  if len(name) >= 2 and name[0] == name[-1] and name[0] in '\'"':
    return name[1:-1].replace("\\'", "'")
  return name


def _parse_value(text: str, path: str, line_no: int) -> float:
  try:
    return float(text)
  except ValueError:
    raise DataError(f'{path}:{line_no}: value {text!r} is not a number') from None


def read_arff(arff_path: str, label_names: tuple[str, ...]) -> MultiLabelArrays:
  """Reads a (sparse or dense) Mulan ARFF file; `label_names` from its XML."""
  try:
    f = open(arff_path, encoding='utf-8')
  except FileNotFoundError:
    raise DataError(f'data file not found: {arff_path}') from None
  attributes: list[str] = []
  rows: list[dict[int, float]] = []
  in_data = False
  with f:
    for line_no, raw in enumerate(f, start=1):
      line = raw.strip()
      if not line or line.startswith('%'):
        continue
      if not in_data:
        lower = line.lower()
        if lower.startswith('@attribute'):
          match = _ATTRIBUTE.match(line)
          if not match:
            raise DataError(f'{arff_path}:{line_no}: malformed @attribute line')
          attributes.append(_unquote(match.group(1)))
        elif lower.startswith('@data'):
          in_data = True
        elif not lower.startswith('@relation'):
          raise DataError(f'{arff_path}:{line_no}: expected @relation, '
                          f'@attribute or @data, got {line[:40]!r}')
        continue
      rows.append(_parse_row(line, len(attributes), arff_path, line_no))
  if not in_data:
    raise DataError(f'{arff_path}: no @data section (not an ARFF file?)')
  index = {name: i for i, name in enumerate(attributes)}
  missing = [name for name in label_names if name not in index]
  if missing:
    raise DataError(f'{arff_path}: {len(missing)} labels of the XML file are '
                    f'not attributes, e.g. {missing[0]!r}; wrong XML file?')
  label_columns = np.array([index[name] for name in label_names])
  is_label = np.zeros(len(attributes), bool)
  is_label[label_columns] = True
  feature_columns = np.flatnonzero(~is_label)
  dense = np.zeros((len(rows), len(attributes)), np.float32)
  for r, row in enumerate(rows):
    if row:
      dense[r, list(row)] = list(row.values())
  labels = dense[:, label_columns]
  if not np.isin(labels, (0.0, 1.0)).all():
    raise DataError(f'{arff_path}: label values must be 0 or 1')
  return MultiLabelArrays(
      features=dense[:, feature_columns],
      labels=labels.astype(np.uint8),
      feature_names=tuple(attributes[i] for i in feature_columns),
      label_names=tuple(label_names))


def _parse_row(line: str, num_attributes: int, path: str,
               line_no: int) -> dict[int, float]:
  if line.startswith('{'):
    if not line.endswith('}'):
      raise DataError(f'{path}:{line_no}: sparse row does not end with "}}"')
    row = {}
    body = line[1:-1].strip()
    for item in body.split(',') if body else []:
      parts = item.split()
      if len(parts) != 2 or not parts[0].isdigit():
        raise DataError(f'{path}:{line_no}: sparse entry {item.strip()!r} is '
                        'not "index value"')
      column = int(parts[0])
      if column >= num_attributes:
        raise DataError(f'{path}:{line_no}: attribute index {column} out of '
                        f'range (the header declares {num_attributes})')
      row[column] = _parse_value(parts[1], path, line_no)
    return row
  values = line.split(',')
  if len(values) != num_attributes:
    raise DataError(f'{path}:{line_no}: {len(values)} values, the header '
                    f'declares {num_attributes} attributes')
  return {i: _parse_value(v.strip(), path, line_no)
          for i, v in enumerate(values) if v.strip() not in ('0', '0.0')}


def write_sparse_arff(path: str, relation: str, arrays: MultiLabelArrays
                      ) -> None:
  """Writes features then labels as a sparse ARFF (Mulan's layout)."""
  names = arrays.feature_names + arrays.label_names
  values = np.concatenate([arrays.features, arrays.labels.astype(np.float32)],
                          axis=1)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(f'@relation {relation}\n\n')
    for name in names:
      f.write(f'@attribute {name} {{0,1}}\n')
    f.write('\n@data\n')
    for row in values:
      items = ','.join(f'{i} {v:g}' for i in np.flatnonzero(row)
                       for v in (row[i],))
      f.write('{' + items + '}\n')


def write_label_xml(path: str, label_names: tuple[str, ...]) -> None:
  with open(path, 'w', encoding='utf-8') as f:
    f.write('<?xml version="1.0" encoding="utf-8"?>\n'
            '<labels xmlns="http://mulan.sourceforge.net/labels">\n')
    for name in label_names:
      f.write(f'<label name="{name}"></label>\n')
    f.write('</labels>\n')
