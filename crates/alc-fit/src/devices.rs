//! Device profiles: built in from the field's device matrix, extended by TOML.

use std::path::Path;

use crate::FitError;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// What kind of OS runs the device; it decides the memory the OS keeps for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceClass {
    /// Android (AOSP) smart glasses and headsets: one foreground app, few services.
    AndroidWearable,
    /// Android phones: vendor UI, more resident services.
    AndroidPhone,
    /// iOS: the per-app memory limit (jetsam) without the increased-memory-limit
    /// entitlement.
    Ios,
}

impl DeviceClass {
    /// Bytes of `ram` the OS and its services keep, by the class rule:
    /// android-wearable 512 MiB + 25 % of RAM; android-phone 1 GiB + 35 % of RAM;
    /// ios 50 % of RAM (the per-app limit reported for recent iPhones lies between
    /// about 37 % and 75 % depending on model and iOS version; half is the middle).
    pub fn os_reserve(self, ram: u64) -> u64 {
        match self {
            DeviceClass::AndroidWearable => 512 * MIB + ram / 4,
            DeviceClass::AndroidPhone => GIB + ram * 35 / 100,
            DeviceClass::Ios => ram / 2,
        }
        .min(ram)
    }

    pub fn name(self) -> &'static str {
        match self {
            DeviceClass::AndroidWearable => "android-wearable",
            DeviceClass::AndroidPhone => "android-phone",
            DeviceClass::Ios => "ios",
        }
    }
}

/// One device profile.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub class: DeviceClass,
    pub ram_bytes: u64,
    /// Memory the OS keeps ([`DeviceClass::os_reserve`] unless the profile sets it).
    pub os_reserve_bytes: u64,
    /// `ram_bytes - os_reserve_bytes`: what one app may use.
    pub usable_bytes: u64,
    pub gpu: String,
    /// The backend the field uses on this device (vulkan, opencl, metal).
    pub backend: String,
    pub notes: String,
    /// "built-in" or the TOML file it came from.
    pub source: String,
}

impl Device {
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: &str,
        name: &str,
        class: DeviceClass,
        ram: u64,
        reserve: Option<u64>,
        gpu: &str,
        backend: &str,
        notes: &str,
        source: &str,
    ) -> Device {
        let os_reserve_bytes = reserve.unwrap_or_else(|| class.os_reserve(ram)).min(ram);
        Device {
            id: id.into(),
            name: name.into(),
            class,
            ram_bytes: ram,
            os_reserve_bytes,
            usable_bytes: ram - os_reserve_bytes,
            gpu: gpu.into(),
            backend: backend.into(),
            notes: notes.into(),
            source: source.into(),
        }
    }
}

/// The device matrix of the field (RealWear, Vuzix, Rokid, Samsung, Apple).
pub fn builtin_devices() -> Vec<Device> {
    use DeviceClass::*;
    let d = |id, name, class, ram_gib: u64, gpu, backend, notes| {
        Device::new(
            id,
            name,
            class,
            ram_gib * GIB,
            None,
            gpu,
            backend,
            notes,
            "built-in",
        )
    };
    vec![
        d("realwear-hmt-1", "RealWear HMT-1", AndroidWearable, 2, "Adreno 506", "vulkan",
          "sold with 2 or 3 GB; the 2 GB units bound the verdict (add a 3 GB profile in a devices TOML for the larger ones)"),
        d("realwear-arc-3", "RealWear Arc 3", AndroidWearable, 4, "Adreno 619", "vulkan", ""),
        d("realwear-navigator-500", "RealWear Navigator 500", AndroidWearable, 4, "Adreno 619", "vulkan", ""),
        d("realwear-navigator-520", "RealWear Navigator 520", AndroidWearable, 4, "Adreno 619", "vulkan", ""),
        d("vuzix-m400", "Vuzix M400", AndroidWearable, 6, "Adreno (Snapdragon)", "vulkan", ""),
        d("vuzix-m4000", "Vuzix M4000", AndroidWearable, 6, "Adreno (Snapdragon)", "vulkan", ""),
        d("vuzix-z100", "Vuzix Z100", AndroidWearable, 6, "not in the device matrix", "vulkan",
          "the matrix gives RAM only; backend assumed as for the other Android devices"),
        d("rokid-x-craft", "Rokid X-Craft", AndroidWearable, 4, "Mali-G57", "opencl",
          "Mali GPU: the OpenCL build, not Vulkan"),
        d("rokid-max-pro", "Rokid Max Pro", AndroidWearable, 6, "not in the device matrix", "vulkan",
          "the matrix gives RAM only; backend assumed as for the other Android devices"),
        d("galaxy-s23", "Samsung Galaxy S23", AndroidPhone, 8, "Adreno 740", "vulkan", ""),
        d("galaxy-s24", "Samsung Galaxy S24", AndroidPhone, 8, "Adreno 750", "vulkan", ""),
        d("galaxy-s24-ultra", "Samsung Galaxy S24 Ultra", AndroidPhone, 12, "Adreno 750", "vulkan",
          "the matrix's 12 GB Galaxy"),
        d("iphone-15", "iPhone 15", Ios, 6, "A16 Bionic", "metal", ""),
        d("iphone-15-pro", "iPhone 15 Pro", Ios, 8, "A17 Pro", "metal", ""),
        d("iphone-16-pro", "iPhone 16 Pro", Ios, 8, "A18 Pro", "metal",
          "the field's matrix lists 12 GB; the 16 Pro ships with 8 GB"),
    ]
}

/// A set of device profiles.
#[derive(Clone, Debug)]
pub struct Devices {
    pub list: Vec<Device>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    device: Vec<TomlDevice>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlDevice {
    id: String,
    name: Option<String>,
    class: DeviceClass,
    ram_mib: u64,
    os_reserve_mib: Option<u64>,
    #[serde(default)]
    gpu: String,
    #[serde(default)]
    backend: String,
    #[serde(default)]
    notes: String,
}

/// The built-in profiles plus those of `path` (a TOML file of `[[device]]` tables);
/// a profile with a built-in id replaces it.
pub fn load_devices(path: Option<&Path>) -> Result<Devices, FitError> {
    let mut list = builtin_devices();
    let Some(path) = path else {
        return Ok(Devices { list });
    };
    let bad = |msg: String| FitError::BadProfiles {
        path: path.to_path_buf(),
        msg,
    };
    let meta = std::fs::metadata(path).map_err(|source| FitError::ReadProfiles {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > 1 << 20 {
        return Err(bad(format!(
            "{} bytes is too large for a profile file (at most 1 MiB)",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|source| FitError::ReadProfiles {
        path: path.to_path_buf(),
        source,
    })?;
    let f: TomlFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|r| text[..r.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().trim().replace('\n', " ");
        bad(match line {
            Some(l) => format!("line {l}: {msg}"),
            None => msg,
        })
    })?;
    let src = path.display().to_string();
    let mut seen = std::collections::HashSet::new();
    for t in f.device {
        let id = t.id.trim().to_ascii_lowercase();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(bad(format!(
                "device id '{}' must be non-empty letters, digits, '-', '_' or '.'",
                t.id
            )));
        }
        if !seen.insert(id.clone()) {
            return Err(bad(format!("device '{id}' is defined twice")));
        }
        if t.ram_mib == 0 || t.ram_mib > 16 << 20 {
            return Err(bad(format!(
                "device '{id}': ram_mib {} must be in 1..=16777216 (16 TiB)",
                t.ram_mib
            )));
        }
        if let Some(r) = t.os_reserve_mib {
            if r >= t.ram_mib {
                return Err(bad(format!(
                    "device '{id}': os_reserve_mib {r} leaves nothing of ram_mib {}",
                    t.ram_mib
                )));
            }
        }
        let dev = Device::new(
            &id,
            t.name.as_deref().unwrap_or(&id),
            t.class,
            t.ram_mib * MIB,
            t.os_reserve_mib.map(|r| r * MIB),
            &t.gpu,
            &t.backend,
            &t.notes,
            &src,
        );
        match list.iter_mut().find(|d| d.id == id) {
            Some(d) => *d = dev,
            None => list.push(dev),
        }
    }
    Ok(Devices { list })
}

impl Devices {
    /// The profile `id` names: its exact id (any case), or the one id ending in
    /// `-<id>` (`hmt-1` for `realwear-hmt-1`).
    pub fn get(&self, id: &str) -> Result<&Device, FitError> {
        let q = id.trim().to_ascii_lowercase();
        if let Some(d) = self.list.iter().find(|d| d.id == q) {
            return Ok(d);
        }
        let suffix = format!("-{q}");
        let m: Vec<&Device> = self
            .list
            .iter()
            .filter(|d| d.id.ends_with(&suffix))
            .collect();
        match m.as_slice() {
            [d] => Ok(d),
            _ => Err(FitError::UnknownDevice {
                id: id.into(),
                known: self
                    .list
                    .iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_matrix() {
        let d = load_devices(None).unwrap();
        let ids: std::collections::HashSet<_> = d.list.iter().map(|d| d.id.clone()).collect();
        assert_eq!(ids.len(), d.list.len(), "ids are unique");
        let hmt = d.get("hmt-1").unwrap();
        assert_eq!(hmt.id, "realwear-hmt-1");
        assert_eq!(hmt.ram_bytes, 2 * GIB);
        assert_eq!(hmt.usable_bytes, 2 * GIB - 512 * MIB - GIB / 2);
        assert_eq!(d.get("ROKID-X-CRAFT").unwrap().backend, "opencl");
        assert_eq!(d.get("iphone-15").unwrap().usable_bytes, 3 * GIB);
        let s24 = d.get("galaxy-s24").unwrap();
        assert_eq!(s24.usable_bytes, 8 * GIB - GIB - 8 * GIB * 35 / 100);
        // "navigator-500" is unique, "navigator" is not a suffix of anything.
        assert!(d.get("navigator-500").is_ok());
        let e = d.get("navigator").unwrap_err().to_string();
        assert!(
            e.contains("unknown device 'navigator'") && e.contains("realwear-navigator-520"),
            "{e}"
        );
    }

    #[test]
    fn toml_extends_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("devices.toml");
        std::fs::write(
            &p,
            r#"
[[device]]
id = "realwear-hmt-1"
name = "RealWear HMT-1 (3 GB)"
class = "android-wearable"
ram_mib = 3072
gpu = "Adreno 506"
backend = "vulkan"

[[device]]
id = "lab-board"
class = "android-phone"
ram_mib = 4096
os_reserve_mib = 1024
"#,
        )
        .unwrap();
        let d = load_devices(Some(&p)).unwrap();
        assert_eq!(d.list.len(), builtin_devices().len() + 1);
        let h = d.get("realwear-hmt-1").unwrap();
        assert_eq!(h.ram_bytes, 3 * GIB);
        assert_eq!(h.source, p.display().to_string());
        let l = d.get("lab-board").unwrap();
        assert_eq!((l.os_reserve_bytes, l.usable_bytes), (GIB, 3 * GIB));
        assert_eq!(l.name, "lab-board");
    }

    #[test]
    fn toml_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.toml");
        let cases = [
            ("[[device]]\nid = \"x\"\nclass = \"android-phone\"\nram_mib = 0\n", "ram_mib 0"),
            ("[[device]]\nid = \"x\"\nclass = \"toaster\"\nram_mib = 10\n", "toaster"),
            ("[[device]]\nid = \"x\"\nclass = \"ios\"\nram_mib = 10\nram_gb = 1\n", "ram_gb"),
            ("[[device]]\nid = \"a b\"\nclass = \"ios\"\nram_mib = 10\n", "device id 'a b'"),
            ("[[device]]\nid = \"x\"\nclass = \"ios\"\nram_mib = 10\nos_reserve_mib = 10\n", "leaves nothing"),
            ("[[device]]\nid = \"x\"\nclass = \"ios\"\nram_mib = 10\n[[device]]\nid = \"X\"\nclass = \"ios\"\nram_mib = 10\n", "defined twice"),
            ("not toml [", "d.toml"),
        ];
        for (text, want) in cases {
            std::fs::write(&p, text).unwrap();
            let e = load_devices(Some(&p)).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let e = load_devices(Some(&dir.path().join("missing.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot read device profiles") && e.contains("missing.toml"),
            "{e}"
        );
    }
}
