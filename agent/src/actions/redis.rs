//! Redis actions (to be written).

use super::{Ctx, Outputs};
use crate::policy::Redis;
use serde_json::Value;

pub async fn perform(action: &str, _inst: &Redis, _args: &Value, _ctx: &Ctx<'_>) -> Result<Outputs, String> {
    Err(format!("{action} is not implemented yet"))
}
