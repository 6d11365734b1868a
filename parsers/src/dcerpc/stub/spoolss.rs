//! SPOOLSS ([MS-RPRN]) and IRemoteWinspool ([MS-PAR]): the machine a change notification is
//! sent back to (the printer bug's listener), and the files a printer driver installs
//! (PrintNightmare).

use super::{ByteOrder, Encoding, ndr::Ndr};

/// RpcRemoteFindFirstPrinterChangeNotification (opnum 62, [MS-RPRN] 3.1.4.10.3) and its Ex
/// (opnum 65, 3.1.4.10.4) [in] parameters, up to pszLocalMachine:
///
/// ```text
/// DWORD RpcRemoteFindFirstPrinterChangeNotificationEx([in] PRINTER_HANDLE hPrinter,
///   [in] DWORD fdwFlags, [in] DWORD fdwOptions, [in, string, unique] wchar_t* pszLocalMachine,
///   [in] DWORD dwPrinterLocal, [in, unique] RPC_V2_NOTIFY_OPTIONS* pOptions);
/// ```
pub(super) fn local_machine(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<String> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.handle()?;
    let _flags = ndr.u32()?;
    let _options = ndr.u32()?;
    ndr.unique_wstring().map(Option::unwrap_or_default)
}

/// A field of a DRIVER_INFO structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    /// `[string] wchar_t*`.
    Text,
    /// `[size_is(cch)] wchar_t*`: a multi-string, a conformant array.
    Units,
    Word,
    /// A FILETIME: two DWORDs.
    Time,
    /// A DWORDLONG.
    Long,
}

use Field::{Long, Text, Time, Units, Word};

/// DRIVER_INFO_2 and RPC_DRIVER_INFO_3/4/6/8 ([MS-RPRN] 2.2.1.5): cVersion, then pName,
/// pEnvironment, pDriverPath, pDataFile, pConfigFile and (3 and later) pHelpFile, ...
fn driver_fields(level: u32) -> Option<&'static [Field]> {
    const LEVEL3: &[Field] = &[
        Word, Text, Text, Text, Text, Text, Text, Text, Text, Word, Units,
    ];
    const LEVEL4: &[Field] = &[
        Word, Text, Text, Text, Text, Text, Text, Text, Text, Word, Units, Word, Units,
    ];
    const LEVEL6: &[Field] = &[
        Word, Text, Text, Text, Text, Text, Text, Text, Text, Word, Units, Word, Units, Time, Long,
        Text, Text, Text, Text,
    ];
    const LEVEL8: &[Field] = &[
        Word, Text, Text, Text, Text, Text, Text, Text, Text, Word, Units, Word, Units, Time, Long,
        Text, Text, Text, Text, Text, Text, Word, Units, Text, Word, Word, Units, Time, Long,
    ];
    Some(match level {
        2 => &[Word, Text, Text, Text, Text, Text],
        3 => LEVEL3,
        4 => LEVEL4,
        6 => LEVEL6,
        8 => LEVEL8,
        _ => return None,
    })
}

/// What a driver installation names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrinterDriver {
    /// pDriverPath, pDataFile, pConfigFile and (level 3 and later) pHelpFile, the empty left
    /// out.
    pub paths: Vec<String>,
    /// dwFileCopyFlags (APD_*); 0 for RpcAddPrinterDriver, which has none.
    pub flags: u32,
}

/// RpcAddPrinterDriver (opnum 9, [MS-RPRN] 3.1.4.4.1), RpcAddPrinterDriverEx (opnum 89,
/// 3.1.4.4.8) and IRemoteWinspool RpcAsyncAddPrinterDriver (opnum 39, [MS-PAR] 3.1.4.2.2)
/// [in] parameters; `with_flags` for the last two:
///
/// ```text
/// DWORD RpcAddPrinterDriverEx([in, string, unique] STRING_HANDLE pName,
///   [in] DRIVER_CONTAINER* pDriverContainer, [in] DWORD dwFileCopyFlags);
/// DRIVER_CONTAINER = DWORD Level; [switch_is(Level)] union { DRIVER_INFO_<Level>* }
/// ```
pub(super) fn add_printer_driver(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
    with_flags: bool,
) -> Option<PrinterDriver> {
    let mut ndr = Ndr::new(stub, encoding, order);
    let _name = ndr.unique_wstring()?;
    ndr.structure()?;
    let level = ndr.u32()?;
    // The union is aligned as its arm, a pointer: to 8 in NDR64 ([MS-RPCE] 2.2.5.3.4.3).
    ndr.structure()?;
    let tag = ndr.u32()?;
    let fields = driver_fields(level)?;
    if tag != level {
        return None;
    }
    let mut driver = PrinterDriver::default();
    if ndr.pointer()? != 0 {
        // Levels 6 and 8 hold 64-bit integers: their structure aligns to 8.
        if fields.contains(&Long) {
            ndr.align(8)?;
        } else {
            ndr.structure()?;
        }
        let mut set = Vec::with_capacity(fields.len());
        for field in fields {
            match field {
                Text | Units => set.push(ndr.pointer()? != 0),
                Word => {
                    ndr.u32()?;
                    set.push(false);
                }
                Time => {
                    ndr.u32()?;
                    ndr.u32()?;
                    set.push(false);
                }
                Long => {
                    ndr.u64()?;
                    set.push(false);
                }
            }
        }
        // pName, pEnvironment, then the paths: the third to the sixth strings.
        let mut strings = 0;
        for (field, set) in fields.iter().zip(set) {
            match (field, set) {
                (Text, true) => {
                    let text = ndr.wstring()?;
                    if (2..=5).contains(&strings) && !text.is_empty() {
                        driver.paths.push(text);
                    }
                    strings += 1;
                }
                (Text, false) => strings += 1,
                (Units, true) => {
                    ndr.conformant_units()?;
                }
                _ => {}
            }
        }
    }
    if with_flags {
        driver.flags = ndr.u32()?;
    }
    Some(driver)
}
