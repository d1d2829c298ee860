//! `keymgr delete URI`: destroy the objects a URI names.

use anyhow::Result;
use keymgr::Access;

use super::{Global, open_logged_in, output, parse_uri};

/// Delete every object the URI names (object= or id= required; add type= to narrow it).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// URI of the objects to delete.
    #[arg(value_name = "URI")]
    uri: String,
}

impl Args {
    pub fn run(self, global: &Global) -> Result<()> {
        let uri = parse_uri(&self.uri)?;
        let ts = open_logged_in(&uri, global, Access::ReadWrite)?;
        let deleted = ts.delete_objects(&uri)?;
        output::print(global, &deleted, || {
            let mut text = String::new();
            for o in &deleted {
                text.push_str(&format!("Deleted {}\n", o.uri));
            }
            if deleted.is_empty() {
                text.push_str("nothing matched\n");
            }
            text
        })
    }
}
