//! Python objects read from the target's memory (3.13+): dictionaries, small ints, instance
//! attributes and modules, laid out as CPython lays them out from 3.13 on. Two questions are
//! answered with them where py-spy cannot help:
//! - thread names on builds py-spy cannot read (free-threaded ones):
//!   `sys.modules["threading"]._active`, each `Thread`'s `_name` and `_native_id`;
//! - which extension modules keep the GIL on in a free-threaded build: those in
//!   `sys.modules` whose `md_gil` says `Py_MOD_GIL_USED`.
//!
//! The few offsets `_Py_DebugOffsets` does not publish come from each release's headers
//! (`offsetof`) and are checked live by `tests/offsets.rs` and `tests/free_threaded.rs`.

use std::collections::HashMap;

use super::debug_offsets::DebugOffsets;
use super::frames::read_string;
use super::layout::StrLayout;
use crate::model::ExtensionModule;
use crate::sampler::memory::ReadMemory;
use crate::sampler::namespace::TargetTid;

/// At most this many entries are read from any one dictionary of the target.
const MAX_ENTRIES: u64 = 1 << 16;
/// `Py_TPFLAGS_INLINE_VALUES` and `Py_TPFLAGS_MANAGED_DICT`.
const INLINE_VALUES: u64 = 1 << 2;
const MANAGED_DICT: u64 = 1 << 4;

/// What `_Py_DebugOffsets` leaves out, per release and build.
#[derive(Debug, Clone, Copy)]
struct Extras {
    /// `offsetof(PyHeapTypeObject, ht_cached_keys)`.
    cached_keys: u64,
    /// `MANAGED_DICT_OFFSET`: the managed `__dict__` pointer, before the object.
    managed_dict: i64,
    /// Free-threaded builds: `offsetof(PyModuleObject, md_gil)`.
    module_gil: Option<u64>,
}

fn extras(offsets: &DebugOffsets) -> Option<Extras> {
    let (cached_keys, managed_dict, module_gil) =
        match (offsets.version.minor, offsets.free_threaded) {
            (13, true) => (896, -8, Some(72)),
            (13 | 14, false) => (880, -24, None),
            (15, false) => (888, -24, None),
            _ => return None,
        };
    Some(Extras {
        cached_keys,
        managed_dict,
        module_gil,
    })
}

/// Reads objects of one interpreter build.
pub struct ObjectReader {
    offsets: DebugOffsets,
    extras: Extras,
    strings: StrLayout,
}

impl ObjectReader {
    /// `None` where this release's object layout is not known.
    pub fn new(offsets: &DebugOffsets, strings: StrLayout) -> Option<ObjectReader> {
        Some(ObjectReader {
            offsets: *offsets,
            extras: extras(offsets)?,
            strings,
        })
    }

    /// Native thread id (as the target's namespace numbers it) to Python name, for every
    /// thread in `threading._active`; empty where `threading` is not imported.
    pub fn thread_names(
        &self,
        mem: &impl ReadMemory,
        interpreter: u64,
    ) -> HashMap<TargetTid, String> {
        self.try_thread_names(mem, interpreter).unwrap_or_default()
    }

    fn try_thread_names(
        &self,
        mem: &impl ReadMemory,
        interpreter: u64,
    ) -> Option<HashMap<TargetTid, String>> {
        let o = &self.offsets;
        let modules = mem.read_u64(interpreter + o.interp_imports_modules).ok()?;
        let threading = self.lookup(mem, modules, "threading")?;
        let module_dict = mem.read_u64(threading + o.object_size).ok()?;
        let active = self.lookup(mem, module_dict, "_active")?;
        let mut names = HashMap::new();
        for (_, thread) in self.entries(mem, active)? {
            let attrs = self.attributes(mem, thread);
            let find = |name: &str| attrs.iter().find(|(k, _)| k == name).map(|&(_, v)| v);
            let (Some(name), Some(native_id)) = (find("_name"), find("_native_id")) else {
                continue;
            };
            if let (Some(name), Some(tid)) = (
                read_string(mem, &self.strings, name),
                self.small_int(mem, native_id),
            ) {
                names.insert(TargetTid(tid), name);
            }
        }
        Some(names)
    }

    /// The extension modules in `sys.modules` that did not declare free-threading support
    /// (`Py_mod_gil`), whose import turns a free-threaded build's GIL on. Empty on builds
    /// with a GIL.
    pub fn gil_users(&self, mem: &impl ReadMemory, interpreter: u64) -> Vec<ExtensionModule> {
        self.try_gil_users(mem, interpreter).unwrap_or_default()
    }

    fn try_gil_users(
        &self,
        mem: &impl ReadMemory,
        interpreter: u64,
    ) -> Option<Vec<ExtensionModule>> {
        let o = &self.offsets;
        let module_gil = self.extras.module_gil?;
        let modules = mem.read_u64(interpreter + o.interp_imports_modules).ok()?;
        let mut users = Vec::new();
        let mut module_type = None;
        for (key, module) in self.entries(mem, modules)? {
            // PyModuleObject: the object header, md_dict, md_def, .. md_gil.
            let kind = mem.read_u64(module + o.object_type).ok()?;
            let is_module = match module_type {
                Some(known) => kind == known,
                None => {
                    let name = mem.read_u64(kind + o.type_name).ok()?;
                    let is = read_c_string(mem, name).as_deref() == Some("module");
                    if is {
                        module_type = Some(kind);
                    }
                    is
                }
            };
            if !is_module {
                continue;
            }
            let def = mem.read_u64(module + o.object_size + 8).ok()?;
            let gil = mem.read_u64(module + module_gil).ok()?;
            // `Py_MOD_GIL_USED` is `(void *)0`; a module with no `PyModuleDef` is Python's.
            if def == 0 || gil != 0 {
                continue;
            }
            let Some(name) = read_string(mem, &self.strings, key) else {
                continue;
            };
            let dict = mem.read_u64(module + o.object_size).ok()?;
            let file = self
                .lookup(mem, dict, "__file__")
                .and_then(|f| read_string(mem, &self.strings, f))
                .unwrap_or_default();
            users.push(ExtensionModule { name, file });
        }
        Some(users)
    }

    /// The value under the `str` key `key` in the dict at `dict`.
    fn lookup(&self, mem: &impl ReadMemory, dict: u64, key: &str) -> Option<u64> {
        self.entries(mem, dict)?
            .into_iter()
            .find(|&(k, _)| read_string(mem, &self.strings, k).as_deref() == Some(key))
            .map(|(_, v)| v)
    }

    /// The (key, value) pairs of a dict object.
    fn entries(&self, mem: &impl ReadMemory, dict: u64) -> Option<Vec<(u64, u64)>> {
        let o = &self.offsets;
        let keys = mem.read_u64(dict + o.dict_keys).ok()?;
        let values = mem.read_u64(dict + o.dict_values).ok()?;
        self.key_entries(mem, keys, (values != 0).then_some(values + 8))
    }

    /// The entries of a keys object; the values come from `values` (a split table) if given.
    fn key_entries(
        &self,
        mem: &impl ReadMemory,
        keys: u64,
        values: Option<u64>,
    ) -> Option<Vec<(u64, u64)>> {
        // PyDictKeysObject: refcnt, log2_size, log2_index_bytes, kind, .., usable, nentries,
        // then the indices and the entries.
        let mut header = [0u8; 32];
        mem.read(keys, &mut header).ok()?;
        let log2_index_bytes = u32::from(header[9]);
        let unicode_keys = header[10] != 0;
        let count = u64::from_le_bytes(header[24..32].try_into().ok()?);
        if log2_index_bytes > 32 || count > MAX_ENTRIES {
            return None;
        }
        let entry_size = if unicode_keys { 16 } else { 24 };
        let first = keys + 32 + (1u64 << log2_index_bytes);
        let mut table = vec![0u8; (count * entry_size) as usize];
        mem.read(first, &mut table).ok()?;
        let mut out = Vec::with_capacity(count as usize);
        let mut split_values = Vec::new();
        if let Some(values) = values {
            split_values.resize((count * 8) as usize, 0);
            mem.read(values, &mut split_values).ok()?;
        }
        for (i, entry) in table.chunks_exact(entry_size as usize).enumerate() {
            let word =
                |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().unwrap_or_default());
            let key = if unicode_keys { word(0) } else { word(8) };
            let value = match values {
                Some(_) => u64::from_le_bytes(split_values[i * 8..i * 8 + 8].try_into().ok()?),
                None if unicode_keys => word(8),
                None => word(16),
            };
            if key != 0 && value != 0 {
                out.push((key, value));
            }
        }
        Some(out)
    }

    /// An instance's attributes: its inline values (3.13+), else its `__dict__`.
    fn attributes(&self, mem: &impl ReadMemory, object: u64) -> Vec<(String, u64)> {
        self.try_attributes(mem, object).unwrap_or_default()
    }

    fn try_attributes(&self, mem: &impl ReadMemory, object: u64) -> Option<Vec<(String, u64)>> {
        let o = &self.offsets;
        let kind = mem.read_u64(object + o.object_type).ok()?;
        let flags = mem.read_u64(kind + o.type_flags).ok()?;
        if flags & MANAGED_DICT == 0 {
            return None;
        }
        let dict_at = object.checked_add_signed(self.extras.managed_dict)?;
        let dict = mem.read_u64(dict_at).ok()?;
        let pairs = if dict != 0 {
            self.entries(mem, dict)?
        } else if flags & INLINE_VALUES != 0 {
            // `tp_basicsize` follows `tp_name`; the values follow the object, after a
            // 4-byte header whose last byte says they are valid.
            let basic_size = mem.read_u64(kind + o.type_name + 8).ok()?;
            let values = object + basic_size;
            let mut header = [0u8; 4];
            mem.read(values, &mut header).ok()?;
            if header[3] == 0 {
                return None;
            }
            let keys = mem.read_u64(kind + self.extras.cached_keys).ok()?;
            self.key_entries(mem, keys, Some(values + 8))?
        } else {
            return None;
        };
        Some(
            pairs
                .into_iter()
                .filter_map(|(k, v)| Some((read_string(mem, &self.strings, k)?, v)))
                .collect(),
        )
    }

    /// The name of `object`'s type (`dict`, `list`, `Counter`), where it reads as one.
    pub fn type_name(&self, mem: &impl ReadMemory, object: u64) -> Option<String> {
        let o = &self.offsets;
        let kind = mem.read_u64(object + o.object_type).ok()?;
        let name = read_c_string(mem, mem.read_u64(kind + o.type_name).ok()?)?;
        let plausible = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        plausible.then_some(name)
    }

    /// A non-negative `int` below 2**32 (a thread id).
    fn small_int(&self, mem: &impl ReadMemory, int: u64) -> Option<u32> {
        let o = &self.offsets;
        // 3.12+: `lv_tag` (digit count << 3 | sign), then 30-bit digits.
        let tag = mem.read_u64(int + o.object_size).ok()?;
        let (digits, sign) = (tag >> 3, tag & 3);
        if sign == 2 || digits > 2 {
            return None;
        }
        let mut value = 0u64;
        for i in (0..digits).rev() {
            let digit = mem.read_u32(int + o.object_size + 8 + 4 * i).ok()?;
            value = (value << 30) | u64::from(digit & 0x3fff_ffff);
        }
        u32::try_from(value).ok()
    }
}

/// A NUL-terminated C string of at most 64 bytes (a type's `tp_name`).
fn read_c_string(mem: &impl ReadMemory, addr: u64) -> Option<String> {
    let mut buf = [0u8; 64];
    mem.read(addr, &mut buf).ok()?;
    let end = buf.iter().position(|&b| b == 0)?;
    String::from_utf8(buf[..end].to_vec()).ok()
}
