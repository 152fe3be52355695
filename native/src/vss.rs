//! Volume Shadow Copy (Windows only) behind a small trait, so everything else builds and
//! tests on every platform. The Windows provider drives WMI's Win32_ShadowCopy through
//! PowerShell rather than the VSS COM API: fewer moving parts, same snapshots. It has not
//! been run in cncop's CI (no Windows runner); see docs/native.md.

use std::io;

/// A created shadow copy.
pub struct Shadow {
    pub id: String,
    /// `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopyN`: read files below it.
    pub device_path: String,
}

/// What creates and releases shadow copies.
pub trait ShadowProvider {
    fn create(&self, volume: &str) -> io::Result<Shadow>;
    fn release(&self, id: &str) -> io::Result<()>;
}

/// Platforms without VSS.
pub struct Unsupported;

impl ShadowProvider for Unsupported {
    fn create(&self, _volume: &str) -> io::Result<Shadow> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "VSS: shadow copies exist only on Windows",
        ))
    }
    fn release(&self, _id: &str) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "VSS: shadow copies exist only on Windows",
        ))
    }
}

#[cfg(windows)]
pub struct Wmi;

#[cfg(windows)]
impl Wmi {
    fn ps(script: &str) -> io::Result<String> {
        let out = std::process::Command::new("powershell.exe")
            .args(["-NoProfile", "-NonInteractive", "-Command", script])
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "VSS: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

#[cfg(windows)]
impl ShadowProvider for Wmi {
    fn create(&self, volume: &str) -> io::Result<Shadow> {
        if !volume
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '\\')
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("VSS: bad volume {volume:?}"),
            ));
        }
        let script = format!(
            "$r = (Get-WmiObject -List Win32_ShadowCopy).Create('{volume}', 'ClientAccessible'); \
             if ($r.ReturnValue -ne 0) {{ throw \"Create returned $($r.ReturnValue)\" }}; \
             $s = Get-WmiObject Win32_ShadowCopy | Where-Object {{ $_.ID -eq $r.ShadowID }}; \
             Write-Output $s.ID; Write-Output $s.DeviceObject"
        );
        let out = Self::ps(&script)?;
        let mut lines = out.lines();
        match (lines.next(), lines.next()) {
            (Some(id), Some(dev)) => Ok(Shadow {
                id: id.trim().into(),
                device_path: dev.trim().into(),
            }),
            _ => Err(io::Error::other(format!("VSS: unexpected output {out:?}"))),
        }
    }
    fn release(&self, id: &str) -> io::Result<()> {
        if !id
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "{}-".contains(c))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("VSS: bad id {id:?}"),
            ));
        }
        Self::ps(&format!(
            "Get-WmiObject Win32_ShadowCopy | Where-Object {{ $_.ID -eq '{id}' }} | ForEach-Object {{ $_.Delete() }}"
        ))
        .map(|_| ())
    }
}

/// The provider for this platform.
pub fn provider() -> Box<dyn ShadowProvider + Send + Sync> {
    #[cfg(windows)]
    return Box::new(Wmi);
    #[cfg(not(windows))]
    return Box::new(Unsupported);
}
