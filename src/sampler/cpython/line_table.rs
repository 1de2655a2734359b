//! Line tables: the line of an instruction, in each version's format, with py-spy's own
//! arithmetic (kept identical so both walks name the same lines).

use super::layout::LineTable;

/// The line py-spy gives for `instruction` (py-spy's own arithmetic, kept identical so both
/// walks name the same lines).
pub(super) fn line_of(format: LineTable, firstlineno: i32, instruction: i64, table: &[u8]) -> i32 {
    let mut line = i64::from(firstlineno);
    let mut address: i64 = 0;
    match format {
        LineTable::Lnotab => {
            for pair in table.chunks_exact(2) {
                address += i64::from(pair[0]);
                if address > instruction {
                    break;
                }
                line += i64::from(pair[1] as i8);
            }
        }
        LineTable::Linetable310 => {
            let lasti = instruction.saturating_mul(2);
            for pair in table.chunks_exact(2) {
                let line_delta = pair[1] as i8;
                if line_delta == -128 {
                    continue;
                }
                line += i64::from(line_delta);
                address += i64::from(pair[0]);
                if address > lasti {
                    break;
                }
            }
        }
        LineTable::Locations { code_adaptive } => {
            let lasti = instruction.saturating_sub(code_adaptive as i64);
            let mut index = 0;
            while index < table.len() {
                let byte = table[index];
                index += 1;
                address += (i64::from(byte & 7) + 1) * 2;
                let code = (byte >> 3) & 15;
                let delta = match code {
                    15 => 0,
                    14 => {
                        let delta = signed_varint(&mut index, table).unwrap_or(0);
                        for _ in 0..3 {
                            varint(&mut index, table); // end line, start and end columns
                        }
                        delta
                    }
                    13 => signed_varint(&mut index, table).unwrap_or(0),
                    10..=12 => {
                        index += 2; // start and end columns
                        i64::from(code - 10)
                    }
                    _ => {
                        index += 1; // column
                        0
                    }
                };
                line = line.saturating_add(delta);
                if address > lasti {
                    break;
                }
            }
        }
    }
    line as i32
}

pub(super) fn varint(index: &mut usize, table: &[u8]) -> Option<u64> {
    let mut byte = *table.get(*index)?;
    *index += 1;
    let mut value = u64::from(byte & 63);
    let mut shift = 0;
    while byte & 64 != 0 {
        byte = *table.get(*index)?;
        *index += 1;
        shift += 6;
        if shift >= 64 {
            return None;
        }
        value = value.wrapping_add(u64::from(byte & 63) << shift);
    }
    Some(value)
}

pub(super) fn signed_varint(index: &mut usize, table: &[u8]) -> Option<i64> {
    let value = varint(index, table)?;
    let magnitude = (value >> 1) as i64;
    Some(if value & 1 != 0 {
        -magnitude
    } else {
        magnitude
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_tables_decode_as_py_spy_does() {
        // lnotab: (address +0, line +1), (+6, +1), (+8, +2)
        let lnotab = [0, 1, 6, 1, 8, 2];
        assert_eq!(line_of(LineTable::Lnotab, 10, 0, &lnotab), 11);
        assert_eq!(line_of(LineTable::Lnotab, 10, 7, &lnotab), 12);
        assert_eq!(line_of(LineTable::Lnotab, 10, 14, &lnotab), 14);
        // 3.10: instruction offsets are doubled; -128 means no line.
        let table = [4, 1, 0x80, 0x80, 4, 2];
        assert_eq!(line_of(LineTable::Linetable310, 10, 1, &table), 11);
        assert_eq!(line_of(LineTable::Linetable310, 10, 2, &table), 13);
        // 3.11+: a one-line entry (code 11: +1, two units), then a signed varint (+3).
        let locations = [0xD9, 0, 0, 0xE8, 6];
        let format = LineTable::Locations { code_adaptive: 0 };
        assert_eq!(line_of(format, 100, 0, &locations), 101);
        assert_eq!(line_of(format, 100, 4, &locations), 104);
        // Truncated or garbage tables end the walk, never panic.
        assert_eq!(line_of(format, 100, 1000, &[0xF0, 0x7F]), 100);
        assert_eq!(line_of(format, 100, 1000, &[0xE8, 0xFF, 0xFF]), 100);
    }

    proptest::proptest! {
        #[test]
        fn any_line_table_decodes_without_panicking(
            table in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            instruction in proptest::prelude::any::<i64>(),
            firstlineno in proptest::prelude::any::<i32>(),
            format in 0..3u8,
        ) {
            let format = match format {
                0 => LineTable::Lnotab,
                1 => LineTable::Linetable310,
                _ => LineTable::Locations { code_adaptive: 192 },
            };
            line_of(format, firstlineno, instruction, &table);
        }
    }
}
